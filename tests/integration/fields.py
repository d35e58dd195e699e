"""Header lookups shared by the backend's view of a request and the client's
view of a response: both keep `headers` as a list of (name, value) pairs in
arrival order."""


class FieldLookup:
    headers = ()

    def header(self, name, default=None):
        """The first field called name (case-insensitive), or default."""
        n = name.lower()
        for k, v in self.headers:
            if k.lower() == n:
                return v
        return default

    def header_all(self, name):
        """Every value of the fields called name, in order."""
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]
