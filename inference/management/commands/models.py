"""`manage.py models load|unload MODEL` and `manage.py models resident`: the control endpoints
from a shell. The models live in the running server's process, so this asks it over HTTP
(with MLX_SERVER_API_KEY when set) rather than loading anything itself."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import quote

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Load or unload a model in the running server, or list its resident models."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["load", "unload", "resident"])
        parser.add_argument("model", nargs="?", help="id or alias (load, unload)")
        parser.add_argument("--url", default=f"http://127.0.0.1:{settings.MLX_SERVER_PORT}",
                            help="the server (default: this machine, MLX_SERVER_PORT)")

    def handle(self, *args, action: str, model: str | None, url: str, **options):
        if action == "resident":
            health = self._call("GET", f"{url.rstrip('/')}/health")
            budget = health.get("memory_budget_bytes")
            self.stdout.write(f"budget: {budget if budget else 'none (one model at a time)'}; "
                              f"resident bytes: {health.get('resident_bytes')}")
            for m in health.get("resident", []):
                self.stdout.write(f"{m['id']}\t{m['budget_bytes']} bytes\t{'pinned' if m['pinned'] else ''}")
            return
        if not model:
            raise CommandError(f"{action} needs a model id")
        entry = self._call("POST", f"{url.rstrip('/')}/v1/models/{quote(model, safe='')}/{action}")
        self.stdout.write(f"{entry['id']}: {'loaded' if entry['loaded'] else 'not loaded'}")

    def _call(self, method: str, url: str) -> dict:
        headers = {"Authorization": f"Bearer {settings.MLX_SERVER_API_KEY}"} if settings.MLX_SERVER_API_KEY else {}
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method=method, headers=headers), timeout=600) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read())["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = exc.reason
            raise CommandError(f"{exc.code}: {message}") from None
        except urllib.error.URLError as exc:
            raise CommandError(f"no server at {url}: {exc.reason}") from None
