/* The pod sandbox's process (what registry.k8s.io/pause is): holds the pod's namespaces,
 * reaps orphans, exits on TERM or INT. Built static by scripts/testenv/build into the image
 * imported into each real node's containerd under the name containerd's sandbox_image gives. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int sig) { (void)sig; _exit(0); }

static void reap(int sig)
{
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

int main(void)
{
	signal(SIGINT, quit);
	signal(SIGTERM, quit);
	signal(SIGCHLD, reap);
	for (;;)
		pause();
}
