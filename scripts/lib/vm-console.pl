#!/usr/bin/perl
# vm-console.pl: the host side of scripts/vm-run's two console streams.
#
#   perl vm-console.pl NONCE STATUS_FILE LOG_FILE SHOW_ALL  <OUT  3<SERIAL
#
# OUT (stdin) is the VM's virtio console, which carries COMMAND's output
# between a START and an EXIT marker.  SERIAL (fd 3) is the serial console:
# kernel messages and the guest's setup messages (and a SETUP-FAILED marker).
# Either stream may carry any marker: if the guest could not set up the
# virtio console, it falls back to the serial one.
#
# - After START, the command stream goes to our stdout, live (partial lines
#   included); before it, everything is only logged.
# - The serial stream goes to LOG_FILE, and to stderr if SHOW_ALL is 1.
#   Lines starting "vm-guest: " or "vm-init: " (the guest's own errors)
#   always go to stderr.
# - At the end STATUS_FILE gets "status=exit N", "status=setup-failed" or
#   "status=" (no marker seen), and "boot=SECONDS" (time to START).
# Markers carry NONCE so that COMMAND's output can never fake one.
use strict;
use warnings;
use IO::Handle;
use IO::Select;
use Time::HiRes qw(time);

my ($nonce, $status_file, $log_file, $show_all) = @ARGV;
die "usage: vm-console.pl NONCE STATUS_FILE LOG_FILE SHOW_ALL\n" unless defined $show_all;
my $t0 = time;

open(my $log, '>', $log_file) or die "vm-run: $log_file: $!\n";
open(my $serial, '<&=', 3) or die "vm-run: fd 3: $!\n";
$log->autoflush(1);
STDOUT->autoflush(1);
STDERR->autoflush(1);

my %name = (fileno(STDIN) => 'out', fileno($serial) => 'serial');
my %pending = (out => '', serial => '');
my $state = 0;          # 0 booting, 1 command running, 2 finished
my $cmd_stream = '';    # the stream that carried START
my ($status, $boot) = ('', '');
my $marker = qr/^(.*?)\@\@MIGRDMA-VM-(START|EXIT|SETUP-FAILED) \Q$nonce\E(?: (\d+))?\@\@/s;

# A complete line (or the final unterminated piece) from stream $src.
sub line {
	my ($src, $line) = @_;
	my $is_cmd = $state == 1 && $src eq $cmd_stream;
	print $log $line unless $is_cmd;
	$line =~ s/\r\n\z/\n/;    # ttys turn \n into \r\n
	if ($state < 2 && $line =~ $marker) {
		my ($pre, $kind, $rc) = ($1, $2, $3);
		print STDOUT $pre if $is_cmd;    # output that did not end in \n
		if ($kind eq 'START') {
			($state, $cmd_stream) = (1, $src);
			$boot = sprintf('%.1f', time - $t0);
		} elsif ($kind eq 'EXIT') {
			($state, $status) = (2, "exit $rc");
		} else {
			($state, $status) = (2, 'setup-failed');
		}
		return;
	}
	if ($is_cmd) {
		print STDOUT $line;
	} elsif ($show_all || $line =~ /^vm-(?:guest|init): /) {
		print STDERR $line;
	}
}

my $sel = IO::Select->new(\*STDIN, $serial);
while ($sel->count) {
	for my $h ($sel->can_read) {
		my $src = $name{fileno($h)};
		my $n = sysread($h, my $chunk, 65536);
		if (!$n) {    # EOF (QEMU exited) or error
			$sel->remove($h);
			line($src, $pending{$src}) if length $pending{$src};
			$pending{$src} = '';
			next;
		}
		my @lines = split /(?<=\n)/, $pending{$src} . $chunk;
		$pending{$src} = $lines[-1] =~ /\n\z/ ? '' : pop @lines;
		line($src, $_) for @lines;
		# Show a partial line of COMMAND's output now (progress dots...),
		# unless it could be the beginning of a marker.
		if ($state == 1 && $src eq $cmd_stream && length $pending{$src}
			&& index($pending{$src}, '@') < 0 && $pending{$src} !~ /\r\z/) {
			print STDOUT $pending{$src};
			$pending{$src} = '';
		}
	}
}

open(my $st, '>', $status_file) or die "vm-run: $status_file: $!\n";
print $st "status=$status\nboot=$boot\n";
close $st or die "vm-run: $status_file: $!\n";
