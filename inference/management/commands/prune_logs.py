"""Delete old request-log rows: `manage.py prune_logs --older-than 30d [--vacuum]`."""
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from inference.retention import parse_age, prune


class Command(BaseCommand):
    help = "Delete request-log rows older than --older-than (30d, 12h, 90m, 45s); --vacuum gives the space back."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", required=True, help="an age: 30d, 12h, 90m, 45s")
        parser.add_argument("--vacuum", action="store_true",
                            help="then VACUUM, so the file shrinks (SQLite otherwise reuses the pages)")

    def handle(self, *args, older_than: str, vacuum: bool, **options):
        try:
            age = parse_age(older_than)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        deleted = prune(age)
        if vacuum:
            with connection.cursor() as cursor:
                cursor.execute("VACUUM")
        self.stdout.write(f"deleted {deleted} request-log row(s) older than {age}")
