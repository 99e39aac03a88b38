/* kiln worker — a received job message kept hidden while its build runs (see
 * sqs_heartbeat.h). */
#include "src/server/sqs_heartbeat.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "src/server/qlease.h"
#include "src/server/s3_context.h"
#include "src/server/sqs_jobs.h"
#include "utils/aws/client.h"

#define CANCEL_POLL_S 2.0

static double real_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *heartbeat_main(void *arg)
{
    kiln_sqs_heartbeat_t *h = arg;
    kiln_aws_t *aws = kiln_aws_new(NULL);
    double period = h->visibility_s / 3.0, next_extend = real_now() + period;
    double next_poll = real_now() + CANCEL_POLL_S;

    pthread_mutex_lock(&h->lock);
    while (!h->stop) {
        double until =
            h->cancel_url && !h->canceled && next_poll < next_extend ? next_poll : next_extend;
        struct timespec ts = {.tv_sec = (time_t)until,
                              .tv_nsec = (long)((until - (double)(time_t)until) * 1e9)};
        if (pthread_cond_timedwait(&h->cond, &h->lock, &ts) != ETIMEDOUT || h->stop)
            continue;
        pthread_mutex_unlock(&h->lock);
        if (h->cancel_url && !h->canceled && real_now() >= next_poll) {
            if (kiln_s3_context_exists(aws, h->cancel_url, NULL) == 1)
                h->canceled = 1;
            next_poll = real_now() + CANCEL_POLL_S;
        }
        if (real_now() >= next_extend) {
            kiln_sqs_jobs_extend(aws, h->queue_url, h->receipt, h->visibility_s, NULL);
            if (h->lease_url)
                kiln_qlease_write(aws, h->lease_url, h->visibility_s, h->worker, NULL);
            next_extend = real_now() + period;
        }
        pthread_mutex_lock(&h->lock);
    }
    pthread_mutex_unlock(&h->lock);
    kiln_aws_free(aws);
    return NULL;
}

int kiln_sqs_heartbeat_start(kiln_sqs_heartbeat_t *h, const char *queue_url, const char *receipt,
                             const char *cancel_url, int visibility_s, const char *lease_url,
                             const char *worker)
{
    memset(h, 0, sizeof(*h));
    h->lease_url = lease_url;
    h->worker = worker;
    h->queue_url = queue_url;
    h->receipt = receipt;
    h->cancel_url = cancel_url;
    h->visibility_s = visibility_s;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->cond, NULL);
    if (pthread_create(&h->thread, NULL, heartbeat_main, h) != 0) {
        pthread_mutex_destroy(&h->lock);
        pthread_cond_destroy(&h->cond);
        return -1;
    }
    return 0;
}

void kiln_sqs_heartbeat_stop(kiln_sqs_heartbeat_t *h)
{
    pthread_mutex_lock(&h->lock);
    h->stop = 1;
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->lock);
    pthread_join(h->thread, NULL);
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->cond);
}
