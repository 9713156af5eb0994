"""Apache Airflow provider for Outlook meetings (Microsoft Graph) and WhatsApp messages (Twilio)."""

__version__ = "0.1.0"
