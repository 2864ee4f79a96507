"""Analytics: the program's KPIs by period (programStats) and the report built on them."""
