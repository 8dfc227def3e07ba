"""The pure core: decisions, text, money, phone and the models; no network and no vendor SDK."""
