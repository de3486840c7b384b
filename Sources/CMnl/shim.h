#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <linux/neighbour.h>
#include <linux/if_link.h>
#include <linux/if_addr.h>

/* What Swift cannot write against libmnl: the attribute-table callback of
 * mnl_attr_parse (a C function filling an array it is handed). */

struct cmnl_table {
    const struct nlattr **tb;
    unsigned int max;
};

static inline int cmnl_table_cb(const struct nlattr *attr, void *data) {
    struct cmnl_table *t = (struct cmnl_table *)data;
    uint16_t type = mnl_attr_get_type(attr);
    if (type < t->max)
        t->tb[type] = attr;
    return MNL_CB_OK;
}

/* Fills tb[0..max) with the attributes after nlh's fixed header of `offset` bytes.
 * Returns MNL_CB_ERROR for a malformed attribute stream. */
static inline int cmnl_parse_table(const struct nlmsghdr *nlh, unsigned int offset,
                                   const struct nlattr **tb, unsigned int max) {
    struct cmnl_table t = { tb, max };
    for (unsigned int i = 0; i < max; i++)
        tb[i] = 0;
    return mnl_attr_parse(nlh, offset, cmnl_table_cb, &t);
}

/* Multicast groups by number (RTNLGRP_*), for NETLINK_ADD_MEMBERSHIP. */
static inline int cmnl_add_group(struct mnl_socket *nl, unsigned int group) {
    return mnl_socket_setsockopt(nl, NETLINK_ADD_MEMBERSHIP, &group, sizeof(group));
}
