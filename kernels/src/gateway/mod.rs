//! An OpenAI-compatible gateway in front of several backends (feature `gateway`): routing, failover,
//! circuit breakers, API keys, rate limits and budgets, privacy tiers and a semantic cache.
