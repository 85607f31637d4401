"""The llamadeck engine: one facade that the CLI, the TUI and the HTTP API all call.

    engine = Engine()
    manifest = engine.pull("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF", on_event=print)
    for m in engine.list_models(): ...

Front ends import only this package: ``Engine`` and every type, event and
error they may see are exported here, and a test fails if a front end
reaches into a submodule. References are parsed once, here at the edge;
inside, the engine passes typed ``HubRef``/``LocalRef`` values.

Nothing here prints or knows who is watching: long jobs report through an
``on_event`` callback (see ``Event``), can be stopped from another thread
with a ``CancelToken``, and fail with ``LlamadeckError`` subclasses whose
messages are fit for users. Importing the engine is cheap: llama_cpp,
huggingface_hub and gguf are imported only by the calls that need them.
"""

from engine.cancel import CancelToken
from engine.durations import parse_keep_alive
from engine.errors import (
    AccessDenied,
    Busy,
    Cancelled,
    DemoPackageMissing,
    DiskFull,
    GatedRepo,
    HubUnreachable,
    IntegrityError,
    InvalidInput,
    InvalidOption,
    InvalidReference,
    InvalidSetting,
    LlamadeckError,
    LoadError,
    ModelCrashed,
    ModelNotFound,
    NetworkError,
    NewerStore,
    NoGGUFInRepo,
    NotFound,
    PromptTooLong,
    QueueFull,
    RepoNotFound,
    ShutDown,
    TemplateError,
    UnknownQuant,
    UnsupportedSchema,
)
from engine.events import (
    Done,
    Embeddings,
    Event,
    EventSink,
    Generation,
    Progress,
    Status,
    Token,
    TokenLogprob,
    Waiting,
)
from engine.facade import Engine, LoadedModel
from engine.images import MAX_IMAGE_BYTES, check_image
from engine.ingest.create import CreateSpec
from engine.ingest.embedded import DEFAULT_MODEL
from engine.ingest.found import FoundModel
from engine.ingest.hub.search import HubRepo
from engine.library import ModelDetails, StoreProblem, VerifyReport
from engine.machine.memory import Fit, Machine
from engine.machine.quant import VariantFit
from engine.option_parsing import parameter_pairs, parse_options
from engine.options import OptionInfo
from engine.options import describe as describe_options
from engine.remote import RemoteEngine, connect
from engine.remote.shapes import loaded_from_ps
from engine.request_options import request_options
from engine.runtime.infill import has_fim_tokens, inserts
from engine.runtime.loading import LoadingModel
from engine.runtime.session import ContextUse, Reply
from engine.runtime.toolcalls import (
    ReplyPiece,
    ToolCall,
    ToolCallParser,
    as_template_call,
    parse_tool_calls,
    tool_call_pieces,
    tool_names,
)
from engine.server_settings import ServerSettings, SettingInfo, describe_settings, from_environment
from engine.shape import ModelShape
from engine.store.cleanup import UNUSED_BLOB_GRACE, PruneReport
from engine.store.manifest import DraftModel, Manifest, ModelConfig, ModelFile
from engine.store.removal import Removal
from engine.surface import EngineSurface
from engine.templates.message import Message
from engine.templates.thinking import thinks
from engine.text import one_line, quoted, visible
from engine.units import format_gib, format_size

__all__ = [
    "DEFAULT_MODEL",
    "MAX_IMAGE_BYTES",
    "UNUSED_BLOB_GRACE",
    "AccessDenied",
    "Busy",
    "CancelToken",
    "check_image",
    "CreateSpec",
    "Cancelled",
    "DemoPackageMissing",
    "DiskFull",
    "Done",
    "Embeddings",
    "Engine",
    "EngineSurface",
    "Event",
    "EventSink",
    "Fit",
    "FoundModel",
    "GatedRepo",
    "Generation",
    "HubRepo",
    "HubUnreachable",
    "IntegrityError",
    "InvalidInput",
    "InvalidOption",
    "OptionInfo",
    "InvalidReference",
    "InvalidSetting",
    "LlamadeckError",
    "LoadError",
    "ModelCrashed",
    "LoadedModel",
    "LoadingModel",
    "ContextUse",
    "Message",
    "Machine",
    "DraftModel",
    "Manifest",
    "ModelConfig",
    "ModelDetails",
    "ModelFile",
    "ModelNotFound",
    "ModelShape",
    "NetworkError",
    "NewerStore",
    "NoGGUFInRepo",
    "NotFound",
    "Progress",
    "PromptTooLong",
    "PruneReport",
    "QueueFull",
    "Reply",
    "ServerSettings",
    "SettingInfo",
    "ReplyPiece",
    "Removal",
    "RemoteEngine",
    "RepoNotFound",
    "Status",
    "ShutDown",
    "StoreProblem",
    "TemplateError",
    "ToolCall",
    "ToolCallParser",
    "Token",
    "TokenLogprob",
    "UnknownQuant",
    "UnsupportedSchema",
    "VariantFit",
    "VerifyReport",
    "Waiting",
    "as_template_call",
    "describe_options",
    "connect",
    "describe_settings",
    "format_gib",
    "format_size",
    "loaded_from_ps",
    "from_environment",
    "has_fim_tokens",
    "inserts",
    "one_line",
    "parameter_pairs",
    "parse_keep_alive",
    "parse_options",
    "parse_tool_calls",
    "quoted",
    "request_options",
    "tool_call_pieces",
    "thinks",
    "tool_names",
    "visible",
]
