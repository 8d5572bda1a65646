"""Configs of the NCSNv2 checkpoints released by ermongroup/ncsnv2 (one per original config file)."""
