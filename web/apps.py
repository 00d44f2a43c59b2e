from django.apps import AppConfig


class WebConfig(AppConfig):
    """The browser pages: the front page and the chat playground (the admin lives in inference)."""

    name = "web"
