"""The command line's grammar: every command, its options, their checks, and errors in the house style."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any, NoReturn

from tui.cli.chatting import cmd_chat
from tui.cli.models import (
    cmd_cp,
    cmd_create,
    cmd_import,
    cmd_list,
    cmd_prune,
    cmd_pull,
    cmd_rm,
    cmd_show,
    cmd_verify,
)
from tui.cli.running import cmd_ps, cmd_run, cmd_serve, cmd_stop
from tui.terminal import error

MAX_SEED = 2**32 - 2  # as the engine: 0xFFFFFFFF is llama.cpp's own "random"


class Parser(argparse.ArgumentParser):
    """argparse, with its errors in the house style: one line, exit 1 (2 means a bug here)."""

    def error(self, message: str) -> NoReturn:
        error(f"{message} (see {self.prog} --help)")
        raise SystemExit(1)


def port_number(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 to 65535)")
    return int(text)


def positive_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def temperature(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number, 0 or more, not {text}")
    return value


def seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be from 0 to {MAX_SEED}, not {value}")
    return value


def settings_help() -> str:
    """``serve --help``'s list of the server settings, from the engine's own table."""
    from engine import describe_settings

    lines = ["server settings, as Ollama's (default in brackets):"]
    for info in describe_settings():
        lines.append(f"  {info.variables[1]:<25} {info.help} [{info.default}]")
    lines += [
        "each also as LLAMADECK_NUM_PARALLEL, ... (which wins over OLLAMA_*) and in config.toml",
        'as num_parallel = 4, keep_alive = "10m", ... (which the variables win over); a request\'s',
        "options and a Modelfile's PARAMETER lines win over all of them",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="llamadeck",
        description="A terminal workstation for local LLMs: pull GGUF models from Hugging Face and run them.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument(
        "--serve",
        action="store_true",
        help="open the app and serve its engine's API too, so other tools share its loaded models "
        "(address as for serve: LLAMADECK_HOST, LLAMADECK_API_KEY)",
    )
    parser.add_argument(
        "--host",
        dest="remote",
        metavar="HOST",
        help="work against the llamadeck, Ollama or OpenAI-compatible server there: host[:port], a URL, "
        "a name from config.toml's [servers], or local (default: LLAMADECK_HOST, OLLAMA_HOST, "
        "config.toml's default_server, else this machine)",
    )
    # --debug after the command too: SUPPRESS keeps a subcommand from resetting one given before it
    common = Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(
        name: str, handler: Callable[[argparse.Namespace], int], help_: str, **kw: Any
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_, description=help_, parents=[common], **kw)
        sub.set_defaults(handler=handler)
        return sub

    pull = add("pull", cmd_pull, "download a model from Hugging Face (or import the embedded default)")
    pull.add_argument("model", help="hf.co/ORG/REPO[:QUANT], ORG/REPO[:QUANT] or gemma3:270m")
    pull.add_argument("--quant", "-q", help="quantization to pull, e.g. Q4_K_M (overrides :QUANT)")
    pull.add_argument(
        "--list", "-l", action="store_true", help="list the quantizations and what fits; pull nothing"
    )
    run = add("run", cmd_run, "generate text with a model (pulls it first when it is not here yet)")
    run.add_argument("model", help="a pulled model, or gemma3:270m")
    run.add_argument(
        "prompt",
        nargs="?",
        help="the prompt; text piped in comes before it, as in ollama run (omitted on a terminal: "
        "chat in the app)",
    )
    run.add_argument("--raw", action="store_true", help="continue the text as is, without the chat template")
    run.add_argument(
        "--max-tokens",
        "-n",
        type=positive_count,
        default=256,
        help="stop after this many tokens (default 256)",
    )
    run.add_argument(
        "--temperature", "-t", type=temperature, default=0.8, help="0 for the likeliest text (default 0.8)"
    )
    run.add_argument(
        "--seed",
        type=seed,
        default=None,
        help="the same seed and prompt give the same text (default: random)",
    )
    run.add_argument("--verbose", "-v", action="store_true", help="print load time and tokens per second")
    run_think = run.add_argument(
        "--think",
        nargs="?",
        const="true",
        metavar="LEVEL",
        help="thinking models: --think (on: their default), --think=false, or =low, =medium, =high, =max",
    )
    run_hide = run.add_argument(
        "--hidethinking",
        action="store_true",
        help="do not show a thinking model's reasoning, only its answer",
    )
    chat = add(
        "chat",
        cmd_chat,
        "chat with a model under the shell prompt, not full screen (saved in the app's chat history)",
    )
    chat.add_argument("model", help="a pulled model, or gemma3:270m")
    chat.add_argument(
        "--temperature", "-t", type=temperature, help="0 for the likeliest text (default: the model's)"
    )
    chat.add_argument("--seed", type=seed, help="the same seed and messages give the same replies")
    chat.add_argument(
        "--max-tokens", "-n", type=positive_count, help="stop each reply after this many tokens"
    )
    chat.add_argument("--verbose", "-v", action="store_true", help="print tokens per second after each reply")
    chat.add_argument("--think", nargs="?", const="true", metavar="LEVEL", help=run_think.help)
    chat.add_argument("--hidethinking", action="store_true", help=run_hide.help)
    add("list", cmd_list, "list the models in the store", aliases=["ls"])
    show = add("show", cmd_show, "show a model's details")
    show.add_argument("model")
    only = show.add_mutually_exclusive_group()
    only.add_argument("--modelfile", action="store_true", help="print a Modelfile that makes it again")
    only.add_argument("--parameters", action="store_true", help="print the model's parameters")
    only.add_argument("--template", action="store_true", help="print the whole chat template")
    only.add_argument("--system", action="store_true", help="print the system prompt")
    only.add_argument("--license", action="store_true", help="print the license")
    create = add("create", cmd_create, "make a model from a Modelfile")
    create.add_argument("model", help="the new model's name, e.g. mymodel or mymodel:v2")
    create.add_argument(
        "--file", "-f", default="Modelfile", help="the Modelfile (default: ./Modelfile; - reads stdin)"
    )
    create.add_argument(
        "--quantize", "-q", help="quantize an F16/F32 model first, e.g. Q4_K_M (see create --help-quantize)"
    )
    create.add_argument("--draft-quantize", help="quantize an F16/F32 DRAFT model first, e.g. Q8_0")
    imports = add(
        "import", cmd_import, "find models Ollama, Hugging Face or LM Studio downloaded and register them"
    )
    imports.add_argument("models", nargs="*", metavar="NAME", help="what to import (as listed); none: list")
    imports.add_argument("--all", action="store_true", help="import every model found that is not here yet")
    imports.add_argument(
        "--dry-run", "-n", action="store_true", help="say what would be imported; do nothing"
    )
    imports.add_argument(
        "--from",
        dest="tools",
        action="append",
        choices=("ollama", "huggingface", "lmstudio"),
        help="look only there (repeatable)",
    )
    rm = add("rm", cmd_rm, "remove models (blobs no other model uses are deleted)")
    rm.add_argument("models", nargs="+", metavar="MODEL")
    add("prune", cmd_prune, "remove abandoned partial downloads and stale locks")
    add("ps", cmd_ps, "list the models a running llamadeck serve has loaded")
    stop = add("stop", cmd_stop, "unload a model from a running llamadeck serve")
    stop.add_argument("model")
    cp = add("cp", cmd_cp, "give a model a second (local) name; no bytes are copied")
    cp.add_argument("source")
    cp.add_argument("destination")
    verify = add("verify", cmd_verify, "re-hash models and check their GGUF structure (exit 1 on a problem)")
    verify.add_argument("models", nargs="*", metavar="MODEL")
    serve = add(
        "serve",
        cmd_serve,
        "serve the Ollama-compatible HTTP API (127.0.0.1:11434 by default)",
        epilog=settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "--host", help="address to listen on, host[:port] (default: LLAMADECK_HOST or 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=port_number, help="port to listen on (default 11434; 0 picks a free one)"
    )
    serve.add_argument(
        "--api-key",
        help="require Authorization: Bearer KEY on every request (needed beyond loopback; "
        "LLAMADECK_API_KEY keeps it out of the process list)",
    )
    return parser
