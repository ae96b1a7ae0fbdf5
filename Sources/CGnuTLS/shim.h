/*
 * GnuTLS helpers for the MicroHTTPD wrapper: per-session client-certificate
 * enforcement, credential loading (for rotation) and peer URI SAN extraction.
 * Sessions come from libmicrohttpd (MHD_CONNECTION_INFO_GNUTLS_SESSION) as
 * `void *` and are passed here as gnutls_session_t.
 */
#ifndef MESHAUTHZ_CGNUTLS_SHIM_H
#define MESHAUTHZ_CGNUTLS_SHIM_H

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <stddef.h>
#include <string.h>

/* Which step of mhz_tls_load_credentials failed. */
enum mhz_tls_load_step {
  MHZ_TLS_LOAD_OK = 0,
  MHZ_TLS_LOAD_ALLOCATE = 1,
  MHZ_TLS_LOAD_KEY_PAIR = 2, /* certificate/key file unreadable, invalid or mismatched */
  MHZ_TLS_LOAD_TRUST = 3     /* client CA file unreadable, invalid or empty */
};

/*
 * Loads a server certificate chain + key (PEM) and a client CA bundle (PEM)
 * into fresh credentials.  Returns 0 and sets *out, or a negative GnuTLS
 * error code (GNUTLS_E_NO_CERTIFICATE_FOUND for an empty CA file) with
 * *failed_step set.
 */
static inline int
mhz_tls_load_credentials(const char *cert_file, const char *key_file,
                         const char *ca_file,
                         gnutls_certificate_credentials_t *out,
                         int *failed_step)
{
  gnutls_certificate_credentials_t cred = NULL;
  int rc;

  *out = NULL;
  *failed_step = MHZ_TLS_LOAD_ALLOCATE;
  rc = gnutls_certificate_allocate_credentials(&cred);
  if (rc < 0)
    return rc;
  *failed_step = MHZ_TLS_LOAD_KEY_PAIR;
  rc = gnutls_certificate_set_x509_key_file(cred, cert_file, key_file,
                                            GNUTLS_X509_FMT_PEM);
  if (rc < 0) {
    gnutls_certificate_free_credentials(cred);
    return rc;
  }
  *failed_step = MHZ_TLS_LOAD_TRUST;
  rc = gnutls_certificate_set_x509_trust_file(cred, ca_file,
                                              GNUTLS_X509_FMT_PEM);
  if (rc < 0 || 0 == rc) {
    gnutls_certificate_free_credentials(cred);
    return (rc < 0) ? rc : GNUTLS_E_NO_CERTIFICATE_FOUND;
  }
  *failed_step = MHZ_TLS_LOAD_OK;
  *out = cred;
  return 0;
}

/*
 * The client-certificate policy, on top of the chain check against the trust list: the leaf must not be
 * a CA (basicConstraints CA:TRUE: a CA certificate is an issuer, never a client identity, even though
 * it trivially "chains" to itself when it is in the trust list), and when it carries an extended key
 * usage extension, that extension must list clientAuth (a certificate without the extension is
 * allowed, as OpenSSL does). GnuTLS checks the key purpose along the chain when asked to through
 * GNUTLS_DT_KEY_PURPOSE_OID. Returns 0 when the peer's certificate passes, a negative value otherwise.
 */
static inline int
mhz_tls_check_client_certificate(gnutls_session_t session)
{
  gnutls_typed_vdata_st purpose;
  unsigned int status = 0;
  unsigned int count = 0;
  unsigned int critical = 0;
  unsigned int is_ca = 0;
  int path_length = 0;
  const gnutls_datum_t *peers;
  gnutls_x509_crt_t crt;
  int rc;

  if (NULL == session)
    return GNUTLS_E_CERTIFICATE_ERROR;
  if (GNUTLS_CRT_X509 != gnutls_certificate_type_get(session))
    return GNUTLS_E_CERTIFICATE_ERROR;
  peers = gnutls_certificate_get_peers(session, &count);
  if (NULL == peers || 0 == count)
    return GNUTLS_E_NO_CERTIFICATE_FOUND;
  memset(&purpose, 0, sizeof(purpose));
  purpose.type = GNUTLS_DT_KEY_PURPOSE_OID;
  purpose.data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT;
  rc = gnutls_certificate_verify_peers(session, &purpose, 1, &status);
  if (rc < 0)
    return rc;
  if (0 != status)
    return GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR;
  if (gnutls_x509_crt_init(&crt) < 0)
    return GNUTLS_E_MEMORY_ERROR;
  rc = gnutls_x509_crt_import(crt, &peers[0], GNUTLS_X509_FMT_DER);
  if (rc >= 0) {
    rc = gnutls_x509_crt_get_basic_constraints(crt, &critical, &is_ca,
                                               &path_length);
    if (GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE == rc)
      rc = 0; /* no basicConstraints: an end-entity certificate */
    else if (rc >= 0)
      rc = is_ca ? GNUTLS_E_CERTIFICATE_ERROR : 0;
  }
  gnutls_x509_crt_deinit(crt);
  return rc < 0 ? rc : 0;
}

/*
 * The handshake's verification callback (server side). Refusing closes the handshake; GnuTLS would not
 * tell the client why (libmicrohttpd closes the socket silently after a failed handshake), so send a
 * fatal bad_certificate alert first: the client then reports a refused certificate instead of a reset.
 */
static inline int
mhz_tls_verify_client(gnutls_session_t session)
{
  if (0 == mhz_tls_check_client_certificate(session))
    return 0;
  (void)gnutls_alert_send(session, GNUTLS_AL_FATAL, GNUTLS_A_BAD_CERTIFICATE);
  return GNUTLS_E_CERTIFICATE_ERROR;
}

/* Big-endian length of `n` bytes at p. */
static inline size_t
mhz_tls_be(const unsigned char *p, int n)
{
  size_t v = 0;
  for (int i = 0; i < n; i++)
    v = (v << 8) | p[i];
  return v;
}

/*
 * The first (leaf) certificate of a Certificate handshake message body, as
 * DER: TLS 1.3 prefixes the list with a certificate_request_context<0..255>
 * and follows each entry with extensions; TLS 1.2 has the bare list. Returns
 * 0 and sets *der, 1 when the list is empty (no client certificate), or -1
 * when the message is malformed (GnuTLS then refuses it itself).
 */
static inline int
mhz_tls_leaf_in_certificate_message(const unsigned char *p, size_t len,
                                    int tls13, gnutls_datum_t *der)
{
  size_t at = 0, list, cert;
  if (tls13) {
    if (len < 1 || len < 1 + (size_t)p[0])
      return -1;
    at = 1 + (size_t)p[0];
  }
  if (len < at + 3)
    return -1;
  list = mhz_tls_be(p + at, 3);
  at += 3;
  if (0 == list)
    return 1;
  if (len < at + list || list < 3)
    return -1;
  cert = mhz_tls_be(p + at, 3);
  at += 3;
  if (0 == cert || list < 3 + cert)
    return -1;
  der->data = (unsigned char *)(p + at);
  der->size = (unsigned int)cert;
  return 0;
}

/*
 * The leaf-only part of the policy (not a CA; clientAuth when there is an
 * EKU), on a DER certificate. 0 when it passes, a negative value otherwise.
 */
static inline int
mhz_tls_leaf_policy(const gnutls_datum_t *der)
{
  gnutls_x509_crt_t crt;
  unsigned int critical = 0, is_ca = 0;
  int path_length = 0, rc, purposes = 0, client = 0;
  if (gnutls_x509_crt_init(&crt) < 0)
    return GNUTLS_E_MEMORY_ERROR;
  rc = gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER);
  if (rc >= 0) {
    rc = gnutls_x509_crt_get_basic_constraints(crt, &critical, &is_ca,
                                               &path_length);
    if (GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE == rc)
      rc = 0;
    else if (rc >= 0)
      rc = is_ca ? GNUTLS_E_CERTIFICATE_ERROR : 0;
  }
  for (unsigned int i = 0; rc >= 0; i++) {
    char oid[128];
    size_t size = sizeof(oid);
    int r = gnutls_x509_crt_get_key_purpose_oid(crt, i, oid, &size, &critical);
    if (GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE == r)
      break;
    if (r < 0) {
      rc = r;
      break;
    }
    purposes++;
    if (0 == strcmp(oid, GNUTLS_KP_TLS_WWW_CLIENT) || 0 == strcmp(oid, GNUTLS_KP_ANY))
      client = 1;
  }
  if (rc >= 0 && purposes > 0 && !client)
    rc = GNUTLS_E_CERTIFICATE_ERROR;
  gnutls_x509_crt_deinit(crt);
  return rc < 0 ? rc : 0;
}

/*
 * Runs when the client's Certificate message has arrived, before GnuTLS
 * parses it. GnuTLS refuses some certificates on its own while parsing (in
 * TLS 1.3, a CA certificate without the digitalSignature key usage), without
 * an alert; judging the leaf here first means every certificate the policy
 * refuses is refused with the alert. The chain is checked later, in
 * mhz_tls_verify_client.
 */
static inline int
mhz_tls_certificate_hook(gnutls_session_t session, unsigned int htype,
                         unsigned when, unsigned int incoming,
                         const gnutls_datum_t *msg)
{
  gnutls_datum_t der;
  int tls13 = GNUTLS_TLS1_3 == gnutls_protocol_get_version(session);
  int found;
  (void)htype;
  (void)when;
  if (!incoming || NULL == msg || NULL == msg->data)
    return 0; /* the server's own Certificate */
  found = mhz_tls_leaf_in_certificate_message(msg->data, msg->size, tls13, &der);
  if (found < 0)
    return 0; /* malformed: GnuTLS refuses it next, as a decoding error */
  if (found > 0) {
    /* No certificate although one is required: say so (RFC 8446 4.4.2.4,
     * RFC 5246 7.4.6) rather than close silently. */
    (void)gnutls_alert_send(session, GNUTLS_AL_FATAL,
                            tls13 ? GNUTLS_A_CERTIFICATE_REQUIRED
                                  : GNUTLS_A_HANDSHAKE_FAILURE);
    return GNUTLS_E_NO_CERTIFICATE_FOUND;
  }
  if (0 == mhz_tls_leaf_policy(&der))
    return 0;
  (void)gnutls_alert_send(session, GNUTLS_AL_FATAL, GNUTLS_A_BAD_CERTIFICATE);
  return GNUTLS_E_CERTIFICATE_ERROR;
}

/*
 * Called for every new server-side session before its handshake: use `cred`
 * (may be NULL to keep the session's current credentials), require a client
 * certificate and verify it during the handshake with mhz_tls_verify_client
 * (chain to the credentials' trust list, no host name check, clientAuth
 * purpose, not a CA).  The requirement and the verification are applied
 * even when setting the credentials fails, so a failure here refuses the
 * client rather than letting it in unverified.
 */
static inline int
mhz_tls_require_client_certificate(gnutls_session_t session,
                                   gnutls_certificate_credentials_t cred)
{
  int rc = 0;
  if (NULL != cred)
    rc = gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, cred);
  gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUIRE);
  gnutls_session_set_verify_function(session, mhz_tls_verify_client);
  gnutls_handshake_set_hook_function(session, GNUTLS_HANDSHAKE_CERTIFICATE_PKT,
                                     GNUTLS_HOOK_POST, mhz_tls_certificate_hook);
  return rc;
}

typedef void (*mhz_tls_san_callback)(void *context, const char *value,
                                     size_t length);

/*
 * Reports each URI subjectAltName of the peer's (leaf) certificate.  The
 * caller must have established that the certificate passes
 * mhz_tls_check_client_certificate (ConnectionState.peerVerified does, once
 * per connection; verifying the chain again here would double the cost).
 * Returns how many were reported, or a negative value on error.
 */
static inline int
mhz_tls_peer_uri_sans(gnutls_session_t session, mhz_tls_san_callback callback,
                      void *context)
{
  unsigned int count = 0;
  const gnutls_datum_t *peers;
  gnutls_x509_crt_t crt;
  int reported = 0;

  if (NULL == session)
    return -1;
  if (GNUTLS_CRT_X509 != gnutls_certificate_type_get(session))
    return -1;
  peers = gnutls_certificate_get_peers(session, &count);
  if (NULL == peers || 0 == count)
    return 0;
  if (gnutls_x509_crt_init(&crt) < 0)
    return -1;
  if (gnutls_x509_crt_import(crt, &peers[0], GNUTLS_X509_FMT_DER) < 0) {
    gnutls_x509_crt_deinit(crt);
    return -1;
  }
  for (unsigned int seq = 0;; seq++) {
    char buf[4096];
    size_t size = sizeof(buf) - 1;
    unsigned int critical = 0;
    int type = gnutls_x509_crt_get_subject_alt_name(crt, seq, buf, &size,
                                                    &critical);
    if (GNUTLS_E_SHORT_MEMORY_BUFFER == type)
      continue; /* absurdly long name: skip it */
    if (type < 0)
      break; /* GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE ends the list */
    if (GNUTLS_SAN_URI == type) {
      buf[size] = '\0';
      callback(context, buf, size);
      reported++;
    }
  }
  gnutls_x509_crt_deinit(crt);
  return reported;
}

/* Frees what GnuTLS allocated for the caller (gnutls_free is a variable and a macro Swift cannot call). */
static inline void
mhz_tls_free(void *data)
{
  gnutls_free(data);
}

#endif /* MESHAUTHZ_CGNUTLS_SHIM_H */
