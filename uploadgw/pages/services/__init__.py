"""Page services: the account pages' calls to authsvc, auditsvc and the gateway's release service."""
