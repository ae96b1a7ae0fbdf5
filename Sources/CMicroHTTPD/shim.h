/*
 * Thin C shim over libmicrohttpd (0.9.75) for Swift.
 *
 * Swift cannot call C variadic functions, so the variadic MHD entry points
 * (MHD_start_daemon, MHD_get_daemon_info, MHD_get_connection_info) are wrapped
 * here as static inline functions.  Everything else Swift calls directly.
 * Nothing in this header knows about GnuTLS: the TLS session is handed out as
 * an opaque `void *` and the GnuTLS helpers live in the CGnuTLS module.
 */
#ifndef MESHAUTHZ_CMICROHTTPD_SHIM_H
#define MESHAUTHZ_CMICROHTTPD_SHIM_H

#include <microhttpd.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Starts a daemon with an MHD_OPTION_END-terminated option array. */
static inline struct MHD_Daemon *
mhz_start_daemon(unsigned int flags, uint16_t port,
                 MHD_AccessHandlerCallback handler, void *handler_cls,
                 const struct MHD_OptionItem *options)
{
  return MHD_start_daemon(flags, port, NULL, NULL, handler, handler_cls,
                          MHD_OPTION_ARRAY, options,
                          MHD_OPTION_END);
}

/* MHD_DAEMON_INFO_BIND_PORT, 0 if unknown. */
static inline uint16_t
mhz_daemon_bind_port(struct MHD_Daemon *daemon)
{
  const union MHD_DaemonInfo *info =
      MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
  return (NULL == info) ? 0 : info->port;
}

/* MHD_CONNECTION_INFO_CLIENT_ADDRESS, NULL if unknown. */
static inline const struct sockaddr *
mhz_connection_client_address(struct MHD_Connection *connection)
{
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  return (NULL == info) ? NULL : info->client_addr;
}

/* MHD_CONNECTION_INFO_GNUTLS_SESSION (a gnutls_session_t), NULL for plain HTTP. */
static inline void *
mhz_connection_tls_session(struct MHD_Connection *connection)
{
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
  return (NULL == info) ? NULL : info->tls_session;
}

/* MHD_CONNECTION_INFO_SOCKET_CONTEXT (set in the connection notifier). */
static inline void *
mhz_connection_socket_context(struct MHD_Connection *connection)
{
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return (NULL == info) ? NULL : info->socket_context;
}

/* MHD_CONNECTION_INFO_CONNECTION_FD, -1 if unknown. */
static inline int
mhz_connection_fd(struct MHD_Connection *connection)
{
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
  return (NULL == info) ? -1 : (int)info->connect_fd;
}

/* MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE (request line + headers, in bytes), 0 if unknown. */
static inline size_t
mhz_connection_header_size(struct MHD_Connection *connection)
{
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
  return (NULL == info) ? 0 : info->header_size;
}

/*
 * What the kernel knows of a TCP connection, for the header deadline (how many bytes the peer has sent
 * so far) and for half-closed peers (state CLOSE_WAIT: the peer sent its FIN). Reads struct tcp_info
 * as raw bytes: glibc's <netinet/tcp.h> lacks tcpi_bytes_received and <linux/tcp.h> clashes with it;
 * the layout only ever grows at the end (tcpi_state at 0, tcpi_bytes_received at 128 since Linux 4.1).
 * Returns 0, or -1 when the kernel gives no (or too short an) answer.
 */
static inline int
mhz_tcp_progress(int fd, uint64_t *bytes_received, int *close_wait)
{
#if defined(__linux__)
  unsigned char info[256];
  socklen_t len = sizeof(info);
  memset(info, 0, sizeof(info));
  if (0 != getsockopt(fd, IPPROTO_TCP, TCP_INFO, info, &len) || len < 136)
    return -1;
  memcpy(bytes_received, info + 128, sizeof(uint64_t));
  *close_wait = (8 == info[0]); /* TCP_CLOSE_WAIT in the kernel's numbering */
  return 0;
#else
  (void)fd; (void)bytes_received; (void)close_wait;
  return -1;
#endif
}

/*
 * 1 when the peer has shut down its sending side and every byte it sent has been read (a peek reads
 * end-of-stream), 0 otherwise. Never blocks, never consumes data.
 */
static inline int
mhz_peer_finished_sending(int fd)
{
  char byte;
  ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return (0 == n) ? 1 : 0;
}

/*
 * Formats an IPv4/IPv6 socket address as text ("127.0.0.1", "::1"; an
 * IPv4-mapped IPv6 address is shown as IPv4). Returns the length written, or
 * -1.
 */
static inline int
mhz_format_address(const struct sockaddr *sa, char *buf, size_t len)
{
  if (NULL == sa || NULL == buf || len < INET6_ADDRSTRLEN)
    return -1;
  if (AF_INET == sa->sa_family) {
    const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;
    if (NULL == inet_ntop(AF_INET, &in4->sin_addr, buf, (socklen_t)len))
      return -1;
  } else if (AF_INET6 == sa->sa_family) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      if (NULL == inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], buf, (socklen_t)len))
        return -1;
    } else if (NULL == inet_ntop(AF_INET6, &in6->sin6_addr, buf, (socklen_t)len)) {
      return -1;
    }
  } else {
    return -1;
  }
  return (int)strlen(buf);
}

/* Where mhz_listen failed. */
enum mhz_listen_stage {
  MHZ_LISTEN_OK = 0,
  MHZ_LISTEN_RESOLVE = 1, /* getaddrinfo: *err is a gai error code */
  MHZ_LISTEN_SOCKET = 2,  /* socket/setsockopt: *err is errno */
  MHZ_LISTEN_BIND = 3,    /* bind: *err is errno */
  MHZ_LISTEN_LISTEN = 4   /* listen: *err is errno */
};

/*
 * Creates a non-blocking, close-on-exec listening TCP socket bound to
 * host:port (numeric address or name; the first address that binds wins).
 * Returns the fd, or -1 with *stage/*err describing the failure. *is_ipv6 is
 * set for AF_INET6 sockets (MHD needs MHD_USE_IPv6 for them).
 */
static inline int
mhz_listen(const char *host, uint16_t port, int backlog,
           int *stage, int *err, int *is_ipv6)
{
  struct addrinfo hints;
  struct addrinfo *res = NULL;
  char service[8];
  int fd = -1;
  int rc;

  *stage = MHZ_LISTEN_OK;
  *err = 0;
  *is_ipv6 = 0;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  snprintf(service, sizeof(service), "%u", (unsigned)port);
  rc = getaddrinfo(host, service, &hints, &res);
  if (0 != rc) {
    *stage = MHZ_LISTEN_RESOLVE;
    *err = rc;
    return -1;
  }
  for (struct addrinfo *ai = res; NULL != ai; ai = ai->ai_next) {
    const int on = 1;
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                ai->ai_protocol);
    if (fd < 0) {
      *stage = MHZ_LISTEN_SOCKET;
      *err = errno;
      continue;
    }
    if (0 != setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on))) {
      *stage = MHZ_LISTEN_SOCKET;
      *err = errno;
      close(fd);
      fd = -1;
      continue;
    }
    if (AF_INET6 == ai->ai_family) {
      /* "::" means both stacks, a specific v6 address means that address. */
      const int off = 0;
      (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
    }
    if (0 != bind(fd, ai->ai_addr, ai->ai_addrlen)) {
      *stage = MHZ_LISTEN_BIND;
      *err = errno;
      close(fd);
      fd = -1;
      continue;
    }
    if (0 != listen(fd, backlog)) {
      *stage = MHZ_LISTEN_LISTEN;
      *err = errno;
      close(fd);
      fd = -1;
      continue;
    }
    *stage = MHZ_LISTEN_OK;
    *err = 0;
    *is_ipv6 = (AF_INET6 == ai->ai_family);
    break;
  }
  freeaddrinfo(res);
  return fd;
}

/* The local port of a bound socket, 0 on error. */
static inline uint16_t
mhz_socket_port(int fd)
{
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (0 != getsockname(fd, (struct sockaddr *)&ss, &len))
    return 0;
  if (AF_INET == ss.ss_family)
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  if (AF_INET6 == ss.ss_family)
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return 0;
}

/*
 * MHD_OPTION_EXTERNAL_LOGGER takes a va_list callback; this trampoline
 * formats the message and forwards it to a plain callback.  Pass
 * mhz_logger_trampoline_address() as the option value and a pointer to a
 * struct mhz_logger (kept alive as long as the daemon) as its ptr_value.
 */
struct mhz_logger {
  void (*log)(void *context, const char *message);
  void *context;
};

static inline void
mhz_logger_trampoline(void *cls, const char *fmt, va_list ap)
{
  struct mhz_logger *logger = (struct mhz_logger *)cls;
  char buf[1024];
  size_t n;
  if (NULL == logger || NULL == logger->log)
    return;
  vsnprintf(buf, sizeof(buf), fmt, ap);
  n = strlen(buf);
  while (n > 0 && ('\n' == buf[n - 1] || '\r' == buf[n - 1]))
    buf[--n] = '\0';
  logger->log(logger->context, buf);
}

static inline intptr_t
mhz_logger_trampoline_address(void)
{
  return (intptr_t)&mhz_logger_trampoline;
}

/*
 * The peer's address as 16 bytes in network order, IPv4 written as ::ffff:a.b.c.d (the form the
 * policy core compares). Returns 4 or 6 (the family as seen, IPv4-mapped IPv6 counting as 4), 0 when
 * there is no IP address.
 */
static inline int
mhz_address_bytes(const struct sockaddr *sa, uint8_t out[16])
{
  if (NULL == sa)
    return 0;
  if (AF_INET == sa->sa_family) {
    const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;
    memset(out, 0, 10);
    out[10] = 0xff;
    out[11] = 0xff;
    memcpy(out + 12, &in4->sin_addr, 4);
    return 4;
  }
  if (AF_INET6 == sa->sa_family) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    memcpy(out, &in6->sin6_addr, 16);
    return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) ? 4 : 6;
  }
  return 0;
}

#endif /* MESHAUTHZ_CMICROHTTPD_SHIM_H */
