"""Streamlit pages: thin UI over elicit/, graph/ and db/."""
