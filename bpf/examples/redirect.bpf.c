/* Sends every frame out of another port (REDIRECT_PORT at compile time: 0 the uplink,
 * VF n is n + 1). */
#include "esw_prog.h"

#ifndef REDIRECT_PORT
#define REDIRECT_PORT 0
#endif

SEC("redirect")
int esw_redirect_all(struct __sk_buff *skb)
{
    return esw_redirect(skb, REDIRECT_PORT);
}

char LICENSE[] SEC("license") = "GPL";
