"""Daphne's runserver on port 1234 by default, serving admin static files, with preload."""
from daphne.management.commands.runserver import Command as DaphneRunserver
from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.management.base import CommandError


class Command(DaphneRunserver):
    help = (
        "Start the OpenAI-compatible server (Daphne, ASGI) on 127.0.0.1:1234 unless told "
        "otherwise; --preload MODEL loads a model (id, alias or 'default') at start."
    )
    default_port = str(settings.MLX_SERVER_PORT)

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--preload", default=settings.MLX_SERVER_PRELOAD,
            help="Model to load at start-up: an id, an alias, or 'default' (env MLX_SERVER_PRELOAD).",
        )

    def handle(self, *args, **options):
        from inference import distributed

        if distributed.backend_named():  # one process per rank: the reloader's child would be a second
            options["use_reloader"] = False
        return super().handle(*args, **options)

    def inner_run(self, *args, **options):
        import mlx.core as mx

        from inference import body_limit, distributed
        from inference.blas import load_fast_blas

        lockstep = distributed.join()
        self.stdout.write(f"MLX device: {mx.default_device()} (mlx {mx.__version__})\n")
        self.stdout.write(f"{load_fast_blas().line()}\n")
        if lockstep is not None:
            self.stdout.write(f"Rank {lockstep.rank} of {lockstep.size} ({lockstep.backend}) of a distributed group\n")
            if not lockstep.leads:  # no API here: serve rank 0's orders until it stops
                from inference.runtime import get_engine

                self.stdout.write("Following rank 0 ...\n")
                self.stdout.flush()
                get_engine().follow()
                return

        body_limit.install()
        if options.get("use_reloader") is False:  # Daphne's signal handlers only run without it
            from twisted.internet import reactor

            from inference import shutdown

            shutdown.install(reactor)

        name = options.get("preload")
        if name:
            from registry.active import get_registry

            from inference.runtime import get_engine

            registry = get_registry()
            spec = registry.default if name == "default" else registry.resolve(name)
            if spec is None:
                raise CommandError(f"--preload: no model named {name!r} in {registry.path}")
            self.stdout.write(f"Preloading {spec.id} ...\n")
            get_engine().preload(spec)
        host = f"[{self.addr}]" if self._raw_ipv6 else self.addr
        self.stdout.write(f"Front page: http://{host}:{self.port}/ (playground, admin, dashboard)\n")
        return super().inner_run(*args, **options)

    def get_application(self, options):
        # A local server: serve the admin's CSS/JS even with DEBUG off.
        return ASGIStaticFilesHandler(super().get_application({**options, "use_static_handler": False}))
