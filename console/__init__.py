"""The assessors' web console, risk register and assessment report."""
