"""Modal screens: help, sampler settings, text prompts, confirmations."""
