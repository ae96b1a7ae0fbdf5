/*
 * Minimal libmicrohttpd server for throughput comparisons with meshauthz's
 * MicroHTTPD wrapper: same daemon options (internal polling thread + epoll,
 * optional thread pool, connection timeout, URI log callback allocating
 * per-request state freed in NOTIFY_COMPLETED, answer on the second
 * access-handler call so keep-alive survives). Always answers 200 with an
 * empty body.
 *
 *   make            # builds ./baseline
 *   ./baseline PORT [THREADS]     # listens on 127.0.0.1:PORT until SIGINT/SIGTERM
 */
#include <microhttpd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct request_state {
  int started;
  size_t body_bytes;
  char *raw_uri;
};

static void *
uri_log(void *cls, const char *uri, struct MHD_Connection *con)
{
  struct request_state *st = calloc(1, sizeof(*st));
  (void)cls;
  (void)con;
  if (NULL != st)
    st->raw_uri = strdup(uri);
  return st;
}

static void
completed(void *cls, struct MHD_Connection *con, void **con_cls,
          enum MHD_RequestTerminationCode toe)
{
  struct request_state *st = *con_cls;
  (void)cls;
  (void)con;
  (void)toe;
  if (NULL != st) {
    free(st->raw_uri);
    free(st);
    *con_cls = NULL;
  }
}

static enum MHD_Result
handler(void *cls, struct MHD_Connection *con, const char *url,
        const char *method, const char *version, const char *upload_data,
        size_t *upload_data_size, void **con_cls)
{
  struct request_state *st = *con_cls;
  struct MHD_Response *resp;
  enum MHD_Result rc;
  (void)cls;
  (void)url;
  (void)method;
  (void)version;
  (void)upload_data;
  if (NULL == st)
    return MHD_NO;
  if (!st->started) {
    st->started = 1; /* accept first: answering now would drop keep-alive */
    return MHD_YES;
  }
  if (0 != *upload_data_size) {
    st->body_bytes += *upload_data_size;
    *upload_data_size = 0;
    return MHD_YES;
  }
  resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
  if (NULL == resp)
    return MHD_NO;
  rc = MHD_queue_response(con, MHD_HTTP_OK, resp);
  MHD_destroy_response(resp);
  return rc;
}

int
main(int argc, char **argv)
{
  struct sockaddr_in addr;
  struct MHD_Daemon *d;
  sigset_t set;
  int sig;
  unsigned int threads;

  if (argc < 2) {
    fprintf(stderr, "usage: %s PORT [THREADS]\n", argv[0]);
    return 2;
  }
  threads = (argc > 2) ? (unsigned int)atoi(argv[2]) : 1;

  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);

  memset(&addr, 0, sizeof(addr));
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)atoi(argv[1]));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0,
                       NULL, NULL, &handler, NULL,
                       MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                       MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)1024,
                       MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)60,
                       MHD_OPTION_URI_LOG_CALLBACK, &uri_log, NULL,
                       MHD_OPTION_NOTIFY_COMPLETED, &completed, NULL,
                       MHD_OPTION_THREAD_POOL_SIZE, (threads > 1) ? threads : 0,
                       MHD_OPTION_END);
  if (NULL == d) {
    fprintf(stderr, "cannot start daemon on 127.0.0.1:%s\n", argv[1]);
    return 1;
  }
  printf("baseline listening on 127.0.0.1:%u\n",
         (unsigned)MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port);
  fflush(stdout);
  sigwait(&set, &sig);
  MHD_stop_daemon(d);
  return 0;
}
