/* The pod sandbox's process (image localhost/pause:3.10, built by tests/env/node.sh with
 * gcc -static): like kubernetes/build/pause/linux/pause.c. It holds the pod's namespaces,
 * reaps orphaned children, and exits on SIGINT/SIGTERM. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static void sigdown(int s) { (void)s; _exit(0); }
static void sigreap(int s) { (void)s; while (waitpid(-1, NULL, WNOHANG) > 0) ; }
int main(void) {
  struct sigaction a = {.sa_handler = sigdown}, r = {.sa_handler = sigreap, .sa_flags = SA_NOCLDSTOP};
  sigaction(SIGINT, &a, NULL); sigaction(SIGTERM, &a, NULL); sigaction(SIGCHLD, &r, NULL);
  for (;;) pause();
}
