"""Report builders (pure: results in, documents out) and their renderers. Nothing here prints."""
