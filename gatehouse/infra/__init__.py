"""Infrastructure shared by the three services. No domain models here."""
