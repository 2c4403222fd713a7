"""The model-tool machinery: which tools a turn offers, running the calls the model asks for
(native or DSML markup), plugins, grounding checks, and the memory tools."""
