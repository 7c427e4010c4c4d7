"""Reports: ladder diagrams, credential redaction and Allure attachments."""
