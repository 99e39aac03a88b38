/* kiln worker — a received job message kept hidden while its build runs: a thread renews
 * the message's visibility every third of the timeout (so slow builds, checkouts and event
 * sends alike are covered), renews the job's max_concurrent lease with it, and looks for the
 * build's cancel marker every few seconds meanwhile. */
#ifndef KILN_SERVER_SQS_HEARTBEAT_H
#define KILN_SERVER_SQS_HEARTBEAT_H

#include <pthread.h>

/* One message's heartbeat: canceled is set once the cancel marker appears. */
typedef struct kiln_sqs_heartbeat {
    const char *queue_url;
    const char *receipt;
    const char *cancel_url; /* or NULL */
    const char *lease_url;  /* the job's max_concurrent lease, renewed with the message; or NULL */
    const char *worker;
    int visibility_s;
    int stop;
    volatile int canceled;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t thread;
} kiln_sqs_heartbeat_t;

/* Starts the heartbeat of the message receipt of queue_url (cancel_url, lease_url and
 * worker may be NULL). -1 when its thread cannot start. */
int kiln_sqs_heartbeat_start(kiln_sqs_heartbeat_t *h, const char *queue_url, const char *receipt,
                             const char *cancel_url, int visibility_s, const char *lease_url,
                             const char *worker);

/* Stops it and waits for its thread. */
void kiln_sqs_heartbeat_stop(kiln_sqs_heartbeat_t *h);

#endif
