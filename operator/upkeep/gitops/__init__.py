"""Declared state from git: load and validate manifests, render, diff, apply, write back."""
