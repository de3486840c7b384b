/* Drops every frame (the slides' "return XDP_DROP"). */
#include "esw_prog.h"

SEC("drop")
int esw_drop_all(struct __sk_buff *skb)
{
    return esw_drop(skb);
}

char LICENSE[] SEC("license") = "GPL";
