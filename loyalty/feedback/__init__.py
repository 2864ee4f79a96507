"""Feedback: members' NPS and CSAT scores, and what they said."""
