"""The editing path: the staged pipeline, its model bundle, imaging, faces, stored latents.

Imports torch (lazily where the API could reach it)."""
