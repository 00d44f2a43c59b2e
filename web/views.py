"""The front page and the playground: server-rendered, no build step. The playground talks to
/v1 from the browser itself, like any other client, so it is rendered with nothing but the
facts it needs to start (whether a key is asked for)."""
from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from inference.api.views import model_entries, server_status


def base_url(request: HttpRequest) -> str:
    """The server's root as this browser reached it: what a client on this machine points at."""
    return f"{request.scheme}://{request.get_host()}"


def index(request: HttpRequest) -> HttpResponse:
    root = base_url(request)
    return render(request, "web/index.html", {
        "status": server_status(),
        "models": model_entries(),
        "root": root,
        "openai_base": f"{root}/v1",
        "needs_key": bool(settings.MLX_SERVER_API_KEY),
    })


def playground(request: HttpRequest) -> HttpResponse:
    """`?model=ID` preselects a model; `?replay=ROW` loads a logged request (the admin's link;
    the row comes from the admin, so only a staff session can read it)."""
    replay = request.GET.get("replay", "")
    return render(request, "web/playground.html", {
        "needs_key": bool(settings.MLX_SERVER_API_KEY),
        "replay_url": reverse("admin:inference_requestlog_replay", args=[replay]) if replay.isdigit() else "",
    })
