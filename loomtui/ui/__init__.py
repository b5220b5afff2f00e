"""The Textual app: a thin view over ``loomtui.core`` (the domain) and a predictor."""
