"""Sub-commands of the ``gen-keras`` CLI, one module each (thin: parse, call the library)."""
