/* A program the verifier refuses: it reads the frame through skb->data without
 * checking against skb->data_end. Loading it must fail with the verifier's message. */
#include "esw_prog.h"

SEC("unchecked")
int esw_unchecked_read(struct __sk_buff *skb)
{
    __u8 *data = (__u8 *)(long)skb->data;
    if (data[12] == 0x08)
        return esw_drop(skb);
    return esw_pass(skb);
}

char LICENSE[] SEC("license") = "GPL";
