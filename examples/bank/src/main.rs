//! A bank account as an actor: many tasks deposit and withdraw at once, and
//! because an actor runs one call at a time the balance is exact.

use prism::Actor;

#[prism::actor]
struct Account {
    balance: i64,
    operations: u64,
}

#[prism::actor]
impl Account {
    fn open(initial: i64) -> Self {
        Account { balance: initial, operations: 0 }
    }

    fn deposit(&mut self, amount: i64) -> i64 {
        self.balance += amount;
        self.operations += 1;
        self.balance
    }

    fn withdraw(&mut self, amount: i64) -> Result<i64, String> {
        if amount > self.balance {
            return Err(format!("insufficient funds: balance {}, asked {amount}", self.balance));
        }
        self.balance -= amount;
        self.operations += 1;
        Ok(self.balance)
    }

    fn statement(&self) -> (i64, u64) {
        (self.balance, self.operations)
    }
}

/// One customer: 100 deposits of `amount`, then 50 withdrawals of it.
#[prism::remote]
fn customer(account: Actor<Account>, amount: i64) -> i64 {
    let deposits: Vec<_> = (0..100).map(|_| account.deposit(amount).remote()).collect();
    prism::get_all(&deposits).unwrap();
    let withdrawals: Vec<_> = (0..50).map(|_| account.withdraw(amount).remote()).collect();
    prism::get_all(&withdrawals).unwrap();
    amount * 50
}

fn main() {
    let account = Account::remote(1_000);
    let customers: Vec<_> = (1..=20).map(|amount| customer::remote(account.clone(), amount)).collect();
    let kept: i64 = prism::get_all(&customers).unwrap().iter().sum();
    let (balance, operations) = prism::get(&account.statement().remote()).unwrap();
    println!("20 customers, {operations} operations, balance {balance}");
    println!("exact: {}", balance == 1_000 + kept);
    match prism::get(&account.withdraw(1_000_000).remote()) {
        Ok(_) => println!("overdraft allowed?!"),
        Err(e) => println!("{e}"),
    }
}
