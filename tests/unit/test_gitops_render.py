"""Rendering a path of a tree: plain YAML directories, kustomizations (real kubectl), keys, duplicates, order."""

from __future__ import annotations

import pytest

from upkeep.gitops import render

CM = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n  a: '1'\n"


def test_plain_directory_is_read_recursively_sorted_with_every_document() -> None:
    tree = {
        "apps/shop/b.yaml": CM % b"b" + b"---\n" + CM % b"c",
        "apps/shop/sub/a.yml": CM % b"a",
        "apps/shop/d.json": b'{"apiVersion": "apps/v1", "kind": "Deployment",'
        b' "metadata": {"name": "d", "namespace": "x"}}',
        "apps/shop/README.md": b"not a manifest",
        "apps/shop/.hidden/e.yaml": CM % b"e",
        "apps/other/f.yaml": CM % b"f",
    }

    rendered = render.render(tree, "./apps/shop/")

    assert rendered.ok and not rendered.kustomized
    assert rendered.files == ("apps/shop/b.yaml", "apps/shop/d.json", "apps/shop/sub/a.yml")
    assert sorted(str(key) for key in rendered.objects) == [
        "ConfigMap a",
        "ConfigMap b",
        "ConfigMap c",
        "Deployment.apps x/d",
    ]
    c = rendered.objects[render.ObjectKey("", "ConfigMap", "", "c")]
    assert (c.document.file, c.document.line) == ("apps/shop/b.yaml", 8)


def test_a_duplicate_object_is_an_error_naming_both_files() -> None:
    tree = {"p/one.yaml": CM % b"same", "p/two.yaml": b"# again\n" + CM % b"same"}

    rendered = render.render(tree, "p")

    assert [error.render() for error in rendered.errors] == [
        "p/two.yaml:2: ConfigMap same is declared twice: in p/one.yaml (line 1) and in p/two.yaml (line 2); keep one"
    ]


def test_bad_yaml_is_an_error_with_its_line_and_a_missing_path_says_so() -> None:
    rendered = render.render({"p/bad.yaml": b"kind: ConfigMap\nmetadata: [\n"}, "p")
    assert [(error.file, error.line) for error in rendered.errors] == [("p/bad.yaml", 3)]
    assert "not valid YAML" in rendered.errors[0].message

    missing = render.render({"p/a.yaml": CM % b"a"}, "q")
    assert [error.message for error in missing.errors] == ["no such directory in the tree"]


def test_a_kustomization_is_rendered_by_kubectl_with_bases_beside_the_path() -> None:
    tree = {
        "base/cm.yaml": CM % b"settings",
        "base/kustomization.yaml": b"resources: [cm.yaml]\n",
        "overlays/prod/kustomization.yaml": b"resources: [../../base]\nnamespace: prod\nnamePrefix: prod-\n",
    }

    rendered = render.render(tree, "overlays/prod")

    assert rendered.ok and rendered.kustomized
    assert list(rendered.objects) == [render.ObjectKey("", "ConfigMap", "prod", "prod-settings")]


def test_a_failing_kustomization_is_a_render_error() -> None:
    rendered = render.render({"k/kustomization.yaml": b"resources: [missing.yaml]\n"}, "k")
    assert not rendered.ok
    assert rendered.errors[0].file == "k/kustomization"
    assert "kubectl kustomize failed" in rendered.errors[0].message
    assert "upkeep-render-" not in rendered.errors[0].message


def test_apply_order_puts_namespaces_then_crds_first() -> None:
    keys = [
        render.ObjectKey("apps", "Deployment", "a", "web"),
        render.ObjectKey("apiextensions.k8s.io", "CustomResourceDefinition", "", "things.example.com"),
        render.ObjectKey("", "ConfigMap", "a", "c"),
        render.ObjectKey("", "Namespace", "", "a"),
    ]
    assert [key.kind for key in render.apply_order(keys)] == [
        "Namespace",
        "CustomResourceDefinition",
        "ConfigMap",
        "Deployment",
    ]


@pytest.mark.parametrize(("given", "normal"), [("./", "."), ("", "."), ("./apps/shop/", "apps/shop"), ("/a", "a")])
def test_paths_are_normalized(given: str, normal: str) -> None:
    assert render.normalize_path(given) == normal


def test_a_path_that_leaves_the_tree_is_refused() -> None:
    with pytest.raises(ValueError, match="leaves the repository"):
        render.normalize_path("apps/../../etc")
