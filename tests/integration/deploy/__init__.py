"""Helpers for tests/integration/test_deploy_manifests.py: offline validators and parsers."""
