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
 * Called for every new server-side session before its handshake: use `cred`
 * (may be NULL to keep the session's current credentials), require a client
 * certificate and verify it against the credentials' trust list during the
 * handshake (no host name check).  The requirement and the verification are
 * applied even when setting the credentials fails, so a failure here refuses
 * the client rather than letting it in unverified.
 */
static inline int
mhz_tls_require_client_certificate(gnutls_session_t session,
                                   gnutls_certificate_credentials_t cred)
{
  int rc = 0;
  if (NULL != cred)
    rc = gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, cred);
  gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUIRE);
  gnutls_session_set_verify_cert(session, NULL, 0);
  return rc;
}

typedef void (*mhz_tls_san_callback)(void *context, const char *value,
                                     size_t length);

/*
 * Reports each URI subjectAltName of the peer's (leaf) certificate, but only
 * if the handshake verified that certificate.  Returns how many were
 * reported, or a negative value on error / unverified peer.
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
  if (0 != gnutls_session_get_verify_cert_status(session))
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

#endif /* MESHAUTHZ_CGNUTLS_SHIM_H */
