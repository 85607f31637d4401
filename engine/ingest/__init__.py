"""How models enter the store: the Hub, pull, local import and discovery, create from a Modelfile."""
