#!/usr/bin/perl
# Writes a small GeoIP2-City-like database for the unit tests:
#   perl make-geo-mmdb.pl [--no-alias] [--empty] OUT.mmdb
# Networks in several countries and continents, IPv4 and IPv6, some with a
# subdivision. --no-alias leaves ::ffff:0:0/96 unmapped, so that only a
# reader that turns IPv4-mapped addresses into IPv4 finds them. --empty
# writes a valid database with no network (to test a replaced file).
# Needs Debian's libmaxmind-db-writer-perl.
use strict;
use warnings;

use MaxMind::DB::Writer::Tree;

my $alias = 1;
my $empty = 0;
while ( @ARGV && $ARGV[0] =~ /^--/ ) {
    my $opt = shift @ARGV;
    if    ( $opt eq '--no-alias' ) { $alias = 0 }
    elsif ( $opt eq '--empty' )    { $empty = 1 }
    else                           { die "unknown option $opt\n" }
}
die "usage: $0 [--no-alias] [--empty] OUT.mmdb\n" unless @ARGV == 1;
my $out = $ARGV[0];

my %types = (
    city         => 'map',
    continent    => 'map',
    country      => 'map',
    subdivisions => [ 'array', 'map' ],
    code         => 'utf8_string',
    iso_code     => 'utf8_string',
    names        => 'map',
    en           => 'utf8_string',
    geoname_id   => 'uint32',
);

my %continent_name = (
    AF => 'Africa',
    AS => 'Asia',
    EU => 'Europe',
    NA => 'North America',
    OC => 'Oceania',
    SA => 'South America',
);

# network, country, continent, subdivision (undef: none)
my @nets = (
    [ '81.2.69.0/24',     'GB', 'EU', 'ENG' ],
    [ '2.125.160.0/20',   'GB', 'EU', undef ],
    [ '89.160.20.0/24',   'SE', 'EU', undef ],
    [ '175.16.199.0/24',  'CN', 'AS', undef ],
    [ '216.160.83.0/24',  'US', 'NA', 'WA' ],
    [ '67.43.156.0/24',   'BT', 'AS', undef ],
    [ '202.196.224.0/20', 'PH', 'AS', undef ],
    [ '186.30.236.0/24',  'CO', 'SA', undef ],
    [ '1.128.0.0/11',     'AU', 'OC', undef ],
    [ '93.184.0.0/16',    'DE', 'EU', 'BY' ],
    [ '2a02:cf40::/29',   'NO', 'EU', undef ],
    [ '2001:480::/32',    'US', 'NA', 'CA' ],
    [ '2001:218::/32',    'JP', 'AS', undef ],
    [ '2c0f:ff00::/32',   'ZA', 'AF', undef ],
    [ '2003::/19',        'DE', 'EU', 'BY' ],
);

my $tree = MaxMind::DB::Writer::Tree->new(
    ip_version            => 6,
    record_size           => 28,
    database_type         => 'GeoIP2-City',
    languages             => ['en'],
    description           => { en => 'turnout unit test GeoIP2-City fixture' },
    map_key_type_callback => sub { $types{ $_[0] } },
    merge_strategy        => 'none',
    alias_ipv6_to_ipv4    => $alias,
);

for my $n (@nets) {
    my ( $net, $cc, $cont, $sub ) = @{$n};
    my %rec = (
        continent => {
            code  => $cont,
            names => { en => $continent_name{$cont} },
        },
        country => {
            iso_code => $cc,
            names    => { en => $cc },
        },
    );
    $rec{subdivisions} = [ { iso_code => $sub, names => { en => $sub } } ]
        if defined $sub;
    if ( $net =~ /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/ ) {
        # IPv4 lives in ::/96 of an IPv6 tree, where IPv4 lookups start
        $net = "::$1/" . ( 96 + $2 );
    }
    $tree->insert_network( $net, \%rec ) unless $empty;
}

open my $fh, '>:raw', $out or die "$out: $!\n";
$tree->write_tree($fh);
close $fh or die "$out: $!\n";
