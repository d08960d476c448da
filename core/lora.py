"""Built-in plugin: LoRA adapters, injected through the same hook a third party would use."""
