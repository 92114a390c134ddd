"""``salesfusion serve``: the forecast API and dashboard over saved models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from salesfusion.cli.common import app, console, guarded
from salesfusion.errors import InputError

# Seconds uvicorn lets requests in flight finish after SIGTERM/SIGINT before closing them.
GRACEFUL_SECONDS = 10


@app.command()
@guarded
def serve(
    model: Annotated[list[Path], typer.Option(
        help="A saved model folder; repeat for several (each is served under its folder "
             "name).")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8000,
    api_keys: Annotated[Path | None, typer.Option(
        help="File of API keys, one per line (else/also SALESFUSION_API_KEYS, "
             "comma-separated).")] = None,
    backtest: Annotated[Path | None, typer.Option(
        help="A `salesfusion backtest` output folder the dashboard overlays and scores.")] = None,
    explain: Annotated[Path | None, typer.Option(
        help="A `salesfusion explain` output folder the dashboard shows.")] = None,
    image_root: Annotated[Path | None, typer.Option(
        help="Folder the items' image paths are relative to (for the dashboard's "
             "photos).")] = None,
    max_batch: Annotated[int, typer.Option(min=1, help="Most series per request.")] = 1000,
    max_horizon: Annotated[int, typer.Option(min=1, help="Longest horizon asked.")] = 104,
    max_body_mb: Annotated[float, typer.Option(min=0.01, help="Largest request body.")] = 10.0,
) -> None:
    """Serve forecasts (REST API with OpenAPI at /docs) and the dashboard (/dashboard)."""
    import uvicorn

    from salesfusion.serving.api import create_app
    from salesfusion.serving.middleware import log_event, service_logger
    from salesfusion.serving.security import Limits, load_keys
    from salesfusion.serving.store import Insights, ModelStore

    keys = load_keys(api_keys)
    for name, folder in (("--backtest", backtest), ("--explain", explain),
                         ("--image-root", image_root)):
        if folder is not None and not folder.is_dir():
            raise InputError(f"{name} {folder}: not a folder")
    limits = Limits(max_batch=max_batch, max_horizon=max_horizon,
                    max_body_bytes=int(max_body_mb * 2**20))
    with console.status(f"Loading {len(model)} model(s)"):
        store = ModelStore.load(model, insights=Insights(backtest, explain, image_root))
    application = create_app(store, keys, limits)
    service_logger()
    log_event("serving", host=host, port=port, models=sorted(store.models))
    console.print(f"Serving {', '.join(sorted(store.models))} on http://{host}:{port} "
                  f"(API docs /docs, dashboard /dashboard); Ctrl-C stops")
    # On SIGTERM/SIGINT uvicorn stops accepting, lets requests in flight finish (at most
    # GRACEFUL_SECONDS), runs the app's shutdown, then re-raises the signal.
    uvicorn.run(application, host=host, port=port, log_level="warning",
                timeout_graceful_shutdown=GRACEFUL_SECONDS)
