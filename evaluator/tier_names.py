"""The tiers' names, importable without torch: the command line offers them as choices before
anything heavy is loaded. ``evaluator.tiers`` refuses to import if its registry disagrees."""

TIER_NAMES = ("check", "smoke", "quick", "full", "full-tiny")
DEFAULT_TIER = "quick"
