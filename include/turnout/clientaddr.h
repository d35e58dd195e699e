/* The client address used for classification (geography) and the
 * client_ip sticky key: the peer, or, when the peer is in trusted_proxies,
 * the right-most X-Forwarded-For address (across all X-Forwarded-For
 * fields, in order) that is not itself trusted, so a client cannot choose
 * its address by sending an X-Forwarded-For of its own. Any thread; no
 * allocation. */
#ifndef TURNOUT_CLIENTADDR_H
#define TURNOUT_CLIENTADDR_H

#include <stddef.h>
#include <sys/socket.h>

#include "turnout/conf-t.h"
#include "turnout/msg-t.h"

/* Whether sa (AF_INET or AF_INET6; IPv4-mapped IPv6 counts as IPv4) is in
 * network c. */
int tn_cidr_match(const struct tn_conf_cidr *c, const struct sockaddr *sa);

/* Whether sa is in any of the n networks. */
int tn_cidr_any(const struct tn_conf_cidr *nets, size_t n, const struct sockaddr *sa);

/* Parses a textual IPv4 or IPv6 address (as connections keep their peer)
 * into out. TN_OK, or TN_ERR when it is neither. Any thread. */
int tn_client_parse_ip(const char *ip, struct sockaddr_storage *out);

/* Whether the textual address ip is in one of the n networks (0 when it
 * does not parse). Any thread. */
int tn_client_ip_trusted(const char *ip, const struct tn_conf_cidr *nets, size_t n);

/* Picks the client address. peer: the connection's peer. fields: the
 * request's header fields (X-Forwarded-For found by name, any case).
 * Walks the X-Forwarded-For addresses from the right: trusted ones are
 * skipped; the first untrusted valid address is the client. An entry that
 * does not parse as an IPv4/IPv6 address (optionally with a port, "[v6]",
 * or "unknown") ends the walk: the client is then the last trusted hop
 * seen (the peer when none). All trusted: the left-most. The peer not
 * trusted, or no X-Forwarded-For: the peer. Empty list elements are
 * ignored; more than 64 elements end the walk like garbage. out gets the
 * address, an IPv4-mapped IPv6 one as AF_INET (the peer keeps its port, an
 * X-Forwarded-For address has port 0); returns 1 when it came from
 * X-Forwarded-For, 0 when it is the peer. */
int tn_client_addr(const struct sockaddr *peer, const struct tn_conf_cidr *trusted,
                   size_t ntrusted, const struct tn_field *fields, unsigned nfields,
                   struct sockaddr_storage *out);

#endif
