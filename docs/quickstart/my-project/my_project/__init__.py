"""A package to upload to your own Gatehouse."""


def greeting() -> str:
    return "Hello from my-project, installed from Gatehouse"
