"""The upload gateway: the public HTTP edge for `twine upload` and the simple index for pip."""
