//! Subcommands whose arguments clap builds only when the command line enters them.
//!
//! clap's derive builds the whole command tree, every flag of every subcommand, before it
//! parses anything; with some twenty subcommands that is most of what a short command such as
//! `podlab cdi generate` (a 2.5 ms target) allocates and faults in. [`Deferred`] hands a
//! subcommand's arguments to [`clap::Command::defer`], so clap builds them only for the
//! subcommand being run (or shown in help).

use clap::builder::{Resettable, StyledStr};
use clap::{ArgMatches, Args, Command, FromArgMatches, Subcommand};

/// `T`'s arguments (or subcommands), built when clap enters the subcommand that holds them.
#[derive(Debug)]
pub struct Deferred<T>(pub T);

impl<T: FromArgMatches> FromArgMatches for Deferred<T> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        T::from_arg_matches(matches).map(Self)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(matches)
    }
}

impl<T: Args> Args for Deferred<T> {
    fn group_id() -> Option<clap::Id> {
        T::group_id()
    }

    fn augment_args(cmd: Command) -> Command {
        cmd.defer(|cmd| keep_about(cmd, T::augment_args))
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        cmd.defer(|cmd| keep_about(cmd, T::augment_args_for_update))
    }
}

/// Runs `augment` on `cmd`, keeping the subcommand's own description: the derive sets it
/// after the arguments, and a flattened group's doc comment (run late, here) would replace it.
fn keep_about(cmd: Command, augment: fn(Command) -> Command) -> Command {
    let kept =
        |text: Option<&StyledStr>| text.cloned().map_or(Resettable::Reset, Resettable::Value);
    let (about, long_about) = (kept(cmd.get_about()), kept(cmd.get_long_about()));
    augment(cmd).about(about).long_about(long_about)
}

impl<T: Subcommand> Subcommand for Deferred<T> {
    fn augment_subcommands(cmd: Command) -> Command {
        cmd.defer(T::augment_subcommands)
    }

    fn augment_subcommands_for_update(cmd: Command) -> Command {
        cmd.defer(T::augment_subcommands_for_update)
    }

    fn has_subcommand(name: &str) -> bool {
        T::has_subcommand(name)
    }
}
