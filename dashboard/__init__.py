"""The Streamlit dashboard: a router (app.py), cached data access, shared components, pages."""
