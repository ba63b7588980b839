-- TLS through the ssl argument: true (no verification); a table with
-- server_cert and verify 2 (required), 1 (optional) and 0 (none); a
-- mismatching CA with verify 2 gives error "connect"; a client certificate
-- with an encrypted key (client_cert, client_key, client_password) against a
-- listener that requires one.
local T = require("common")
sys.taskInit(function()
    local wd = T.watchdog(30000)
    local ca = T.read(T.ca_file)

    local function try(tag, ssl, want, port)
        local c = T.client(tag, port or T.tls_port, ssl)
        c:auth("lua-tls-" .. tag)
        c:connect()
        if want == "conack" then
            T.expect(tag, "conack", 10000)
            c:subscribe("lua/tls", 1)
            T.expect(tag, "suback")
            c:publish("lua/tls", "secret", 1)
            local _, payload = T.expect(tag, "recv")
            T.eq(payload, "secret", tag .. " payload over TLS")
        else
            T.eq(T.expect(tag, "error", 10000), "connect", tag .. " error data")
            T.eq(T.count[tag].conack, nil, tag .. " no conack")
        end
        c:close()
    end

    try("insecure", true, "conack")
    try("required", {server_cert = ca}, "conack")
    try("required2", {server_cert = ca, verify = 2}, "conack")
    try("optional", {verify = 1}, "conack")
    try("none", {verify = 0}, "conack")
    -- a CA that did not sign the server's certificate: the system bundle
    try("wrongca", {verify = 2}, "error")
    -- mutual TLS: client certificate and its encrypted key, as PEM text
    local mtls = tonumber(os.getenv("MQTT_MTLS_PORT"))
    local cert, key = T.read(os.getenv("MQTT_CLIENT_CERT")), T.read(os.getenv("MQTT_CLIENT_KEY"))
    try("mutual", {server_cert = ca, client_cert = cert, client_key = key,
                   client_password = "k3y-pass"}, "conack", mtls)
    try("nocert", {server_cert = ca}, "error", mtls)
    T.pass("tls", wd)
end)
sys.run()
