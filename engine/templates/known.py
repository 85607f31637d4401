"""Chat formats llamadeck records for GGUFs that carry no template, chosen by architecture.

A base model's GGUF (the embedded Gemma 3 270M, many conversions) has no
``tokenizer.chat_template``. For an architecture whose turn format is one and
unambiguous, the store records it with ``template_source`` "llamadeck: <name>
format", so ``show --template`` shows what a chat will use and why. Such a
template is used for chats (a conversation needs turns) and with ``--raw`` off,
never for a plain ``generate``: a base model continues text as it is.

Architectures shared by families with different formats (``llama`` is Llama 2,
Llama 3, Mistral, Vicuna, ...) get none: a guessed template would be a
silently wrong prompt.
"""

from __future__ import annotations

from engine.ingest.embedded import GEMMA_TEMPLATE

CHATML = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)
PHI3 = (
    "{%- for message in messages -%}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|assistant|>\n' }}{%- endif -%}"
)
COMMAND_R = (
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{%- set token = {'user': '<|USER_TOKEN|>', 'system': '<|SYSTEM_TOKEN|>'}.get(message['role'], "
    "'<|CHATBOT_TOKEN|>') -%}"
    "{{ '<|START_OF_TURN_TOKEN|>' + token + message['content'] + '<|END_OF_TURN_TOKEN|>' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>' }}{%- endif -%}"
)

# architecture (GGUF general.architecture) -> (format name, Jinja template)
FORMATS: dict[str, tuple[str, str]] = {
    "gemma": ("Gemma turn", GEMMA_TEMPLATE),
    "gemma2": ("Gemma turn", GEMMA_TEMPLATE),
    "gemma3": ("Gemma turn", GEMMA_TEMPLATE),
    "gemma3n": ("Gemma turn", GEMMA_TEMPLATE),
    "qwen2": ("ChatML", CHATML),
    "qwen2moe": ("ChatML", CHATML),
    "qwen3": ("ChatML", CHATML),
    "qwen3moe": ("ChatML", CHATML),
    "phi3": ("Phi-3", PHI3),
    "command-r": ("Command-R", COMMAND_R),
    "cohere2": ("Command-R", COMMAND_R),
}


def template_and_source(architecture: str, gguf_template: str | None) -> tuple[str | None, str | None]:
    """What a manifest records: the GGUF's own template ("gguf"), else the known format, else none."""
    if gguf_template:
        return gguf_template, "gguf"
    known = FORMATS.get(architecture)
    if known is None:
        return None, None
    name, template = known
    return template, f"llamadeck: {name} format"
