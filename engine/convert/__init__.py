"""Hugging Face safetensors models converted to GGUF, as llama.cpp's ``convert_hf_to_gguf.py`` writes them.

    converted = convert_folder(Path("Llama-3.2-1B-Instruct"), Path("out.gguf"), on_event=print)

``safetensors`` reads the untrusted weight files, ``archs`` says what each
architecture becomes (names, transforms, metadata), ``vocab`` the tokenizer,
``writer`` streams the GGUF out tensor by tensor, hashed as written.
``create`` and ``pull`` call it for a folder, uploaded files or a Hub repo
without GGUF files, and import the result like any GGUF.
"""
