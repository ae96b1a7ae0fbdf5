extension CheckRequest {
    /// The `POST /v1/check` body that asks this request (what a witness prints, so a person can re-run
    /// it with curl or `meshauthz check`). Absent attributes are left out.
    public func writeJSON(into writer: inout JSONWriter) {
        writer.beginObject()
        writer.key("source")
        writer.beginObject()
        if let principal = source.principal { writer.key("principal"); writer.string(principal) }
        if let ip = source.ip { writer.key("ip"); writer.string(ip.description) }
        if let ip = source.remoteIP { writer.key("remoteIp"); writer.string(ip.description) }
        if let principal = source.requestPrincipal { writer.key("requestPrincipal"); writer.string(principal) }
        writer.key("mtls")
        writer.bool(source.isMTLS)
        writer.endObject()
        writer.key("destination")
        writer.beginObject()
        if let namespace = destination.namespace { writer.key("namespace"); writer.string(namespace) }
        writer.key("labels")
        writer.beginObject()
        for (key, value) in destination.labels.sorted(by: { $0.key < $1.key }) { writer.key(key); writer.string(value) }
        writer.endObject()
        if let port = destination.port { writer.key("port"); writer.number(port) }
        if let ip = destination.ip { writer.key("ip"); writer.string(ip.description) }
        writer.endObject()
        writer.key("request")
        writer.beginObject()
        if let method = request.method { writer.key("method"); writer.string(method) }
        if let path = request.path { writer.key("path"); writer.string(path) }
        if let host = request.host { writer.key("host"); writer.string(host) }
        if !request.headers.isEmpty {
            writer.key("headers")
            writer.beginObject()
            for (key, value) in request.headers.sorted(by: { $0.key < $1.key }) { writer.key(key); writer.string(value) }
            writer.endObject()
        }
        if let claims = request.claims { writer.key("claims"); writer.value(.object(claims)) }
        writer.endObject()
        if let sni = connection.sni {
            writer.key("connection")
            writer.beginObject()
            writer.key("sni")
            writer.string(sni)
            writer.endObject()
        }
        writer.endObject()
    }
}
